"""What `mesh run` and a domain's code location (platform_resources.build) agree on, without importing the build."""

DOMAIN_JOB_SUFFIX = "_all_products"  # <domain>_all_products: the job that materializes a domain's products
NOT_PUBLISHED = "mesh/not_published"  # an observation of a port whose dbt model did not build, and why
