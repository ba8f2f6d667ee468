select n.n_nationkey, n.n_name, n.n_regionkey, n.n_comment, r.r_name, r.r_comment
from {{ ref('stg_nation') }} as n
join {{ ref('stg_region') }} as r on n.n_regionkey = r.r_regionkey
