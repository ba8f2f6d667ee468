select * from {{ source('order_db', 'orders') }}
