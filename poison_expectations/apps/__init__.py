"""The applications: the `poison-check` CLI, the Airflow operator, project scaffolding and reports."""
