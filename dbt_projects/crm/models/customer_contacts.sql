select c_custkey, c_name, c_address, c_phone
from {{ ref('stg_customer') }}
