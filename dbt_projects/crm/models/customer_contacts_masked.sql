-- Pseudonymized contacts: the name as a SHA-256 digest, the phone with all but its last four digits masked.
select
    c_custkey,
    sha256(c_name) as c_name_sha256,
    regexp_replace(left(c_phone, length(c_phone) - 4), '[0-9]', '*', 'g') || right(c_phone, 4) as c_phone_redacted
from {{ ref('stg_customer') }}
