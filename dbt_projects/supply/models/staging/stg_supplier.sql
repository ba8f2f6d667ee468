select * from {{ source('supply_db', 'supplier') }}
