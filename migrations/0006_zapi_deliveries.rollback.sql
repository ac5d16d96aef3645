DROP TABLE zapi_deliveries;
