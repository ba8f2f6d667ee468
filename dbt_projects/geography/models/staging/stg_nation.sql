select * from {{ source('reference_db', 'nation') }}
