select s_suppkey, s_name, s_address, s_phone
from {{ ref('stg_supplier') }}
