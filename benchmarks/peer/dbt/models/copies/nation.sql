-- Nations come with their region, as the mesh's geography.nations port serves them.
select *
from {{ source('tpch', 'nation') }}
join {{ source('tpch', 'region') }} on n_regionkey = r_regionkey
