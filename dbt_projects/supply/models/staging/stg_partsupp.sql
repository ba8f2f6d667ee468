select * from {{ source('supply_db', 'partsupp') }}
