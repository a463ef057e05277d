DROP TABLE integrations;
DROP TABLE tenants;
