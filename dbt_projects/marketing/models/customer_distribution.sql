-- TPC-H Q13: how many customers have placed how many orders, not counting special requests.
with customer_orders as (
    select
        c.c_custkey,
        count(o.o_orderkey) as c_count
    from {{ source('crm_customers', 'customers') }} as c
    left join {{ source('sales_orders', 'orders') }} as o
        on c.c_custkey = o.o_custkey
        and o.o_comment not like '%special%requests%'
    group by c.c_custkey
)

select
    c_count,
    count(*) as custdist
from customer_orders
group by c_count
order by custdist desc, c_count desc
