select * from {{ source('tpch', 'partsupp') }}
