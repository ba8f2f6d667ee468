select c_custkey, c_nationkey, c_acctbal, c_mktsegment, c_comment
from {{ ref('stg_customer') }}
