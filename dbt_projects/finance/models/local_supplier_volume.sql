-- TPC-H Q5: 1994 revenue per ASIA nation from orders whose customer and supplier share that nation.
select
    n.n_name,
    sum(l.l_extendedprice * (1 - l.l_discount)) as revenue
from {{ source('crm_customers', 'customers') }} as c
join {{ source('sales_orders', 'orders') }} as o on c.c_custkey = o.o_custkey
join {{ source('sales_orders', 'order_lines') }} as l on l.l_orderkey = o.o_orderkey
join {{ source('supply_suppliers', 'suppliers') }} as s
    on l.l_suppkey = s.s_suppkey and c.c_nationkey = s.s_nationkey
join {{ source('geography_nations', 'nations') }} as n on s.s_nationkey = n.n_nationkey
where n.r_name = 'ASIA'
  and o.o_orderdate >= cast('1994-01-01' as date)
  and o.o_orderdate < cast('1995-01-01' as date)
group by n.n_name
order by revenue desc
