"""The infusion management server: storage, accounts and roles, audit, pump gateway, REST API."""
