-- TPC-H Q10: the twenty customers who lost the most revenue to returns in 1993-Q4, with their contacts.
select
    c.c_custkey,
    cc.c_name,
    sum(l.l_extendedprice * (1 - l.l_discount)) as revenue,
    c.c_acctbal,
    n.n_name,
    cc.c_address,
    cc.c_phone,
    c.c_comment
from {{ source('crm_customers', 'customers') }} as c
join {{ source('crm_customers', 'customer_contacts') }} as cc on cc.c_custkey = c.c_custkey
join {{ source('sales_orders', 'orders') }} as o on c.c_custkey = o.o_custkey
join {{ source('sales_orders', 'order_lines') }} as l on l.l_orderkey = o.o_orderkey
join {{ source('geography_nations', 'nations') }} as n on c.c_nationkey = n.n_nationkey
where o.o_orderdate >= cast('1993-10-01' as date)
  and o.o_orderdate < cast('1994-01-01' as date)
  and l.l_returnflag = 'R'
group by c.c_custkey, cc.c_name, c.c_acctbal, cc.c_phone, n.n_name, cc.c_address, c.c_comment
order by revenue desc
limit 20
