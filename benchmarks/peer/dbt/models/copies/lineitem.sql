select * from {{ source('tpch', 'lineitem') }}
