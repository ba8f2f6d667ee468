-- TPC-H Q3: the ten unshipped orders of the BUILDING segment with the highest revenue on 1995-03-15.
select
    l.l_orderkey,
    sum(l.l_extendedprice * (1 - l.l_discount)) as revenue,
    o.o_orderdate,
    o.o_shippriority
from {{ source('crm_customers', 'customers') }} as c
join {{ source('sales_orders', 'orders') }} as o on c.c_custkey = o.o_custkey
join {{ source('sales_orders', 'order_lines') }} as l on l.l_orderkey = o.o_orderkey
where c.c_mktsegment = 'BUILDING'
  and o.o_orderdate < cast('1995-03-15' as date)
  and l.l_shipdate > cast('1995-03-15' as date)
group by l.l_orderkey, o.o_orderdate, o.o_shippriority
order by revenue desc, o.o_orderdate
limit 10
