"""dashboards: Grafana dashboards as code, generated JSON and provisioning (datasource, dashboards,
alert rules, contact points). Today it holds the ClickHouse datasource provisioning
(``provisioning/datasources/clickhouse.yaml``) used by docker-compose.yml."""
