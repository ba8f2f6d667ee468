select s_suppkey, s_nationkey, s_acctbal, s_comment
from {{ ref('stg_supplier') }}
