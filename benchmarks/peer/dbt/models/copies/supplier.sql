select * from {{ source('tpch', 'supplier') }}
