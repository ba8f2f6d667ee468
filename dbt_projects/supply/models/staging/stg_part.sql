select * from {{ source('supply_db', 'part') }}
