select * from {{ source('tpch', 'orders') }}
