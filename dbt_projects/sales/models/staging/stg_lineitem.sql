select * from {{ source('order_db', 'lineitem') }}
