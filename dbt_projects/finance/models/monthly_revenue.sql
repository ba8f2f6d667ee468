-- Orders and revenue per month. Incremental: a partition run (dbt vars mesh_partition_start/end, set by the
-- platform) recomputes only its months, replacing their rows; every partition at once rebuilds the table. The
-- defaults are every month, for a dbt run by hand.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='order_month') }}
select
    cast(date_trunc('month', o_orderdate) as date) as order_month,
    count(*) as order_count,
    sum(o_totalprice) as revenue
from {{ source('sales_orders', 'orders') }}
{% if is_incremental() %}
where o_orderdate >= cast('{{ var("mesh_partition_start", "0001-01-01") }}' as date)
  and o_orderdate < cast('{{ var("mesh_partition_end", "9999-12-31") }}' as date)
{% endif %}
group by 1
