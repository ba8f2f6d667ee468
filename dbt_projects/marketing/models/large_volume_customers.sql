-- TPC-H Q18: the hundred largest orders of more than 300 units, with the customers who placed them.
with large_orders as (
    select l_orderkey
    from {{ source('sales_orders', 'order_lines') }}
    group by l_orderkey
    having sum(l_quantity) > 300
)

select
    c.c_name,
    c.c_custkey,
    o.o_orderkey,
    o.o_orderdate,
    o.o_totalprice,
    sum(l.l_quantity) as "sum"
from {{ source('crm_customers', 'customer_contacts') }} as c
join {{ source('sales_orders', 'orders') }} as o on c.c_custkey = o.o_custkey
join {{ source('sales_orders', 'order_lines') }} as l on o.o_orderkey = l.l_orderkey
where o.o_orderkey in (select l_orderkey from large_orders)
group by c.c_name, c.c_custkey, o.o_orderkey, o.o_orderdate, o.o_totalprice
order by o.o_totalprice desc, o.o_orderdate
limit 100
