select * from {{ source('crm_db', 'customer') }}
