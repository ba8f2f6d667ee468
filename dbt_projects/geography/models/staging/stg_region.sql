select * from {{ source('reference_db', 'region') }}
