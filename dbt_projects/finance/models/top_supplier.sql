-- TPC-H Q15: the supplier(s) with the highest revenue from lines shipped in 1996-Q1, with their contacts.
with revenue as (
    select
        l_suppkey as supplier_no,
        sum(l_extendedprice * (1 - l_discount)) as total_revenue
    from {{ source('sales_orders', 'order_lines') }}
    where l_shipdate >= cast('1996-01-01' as date)
      and l_shipdate < cast('1996-04-01' as date)
    group by supplier_no
)

select
    s.s_suppkey,
    s.s_name,
    s.s_address,
    s.s_phone,
    r.total_revenue
from {{ source('supply_suppliers', 'supplier_contacts') }} as s
join revenue as r on s.s_suppkey = r.supplier_no
where r.total_revenue = (select max(total_revenue) from revenue)
order by s.s_suppkey
