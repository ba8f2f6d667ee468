select * from {{ source('tpch', 'part') }}
