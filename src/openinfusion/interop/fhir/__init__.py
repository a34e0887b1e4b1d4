"""The FHIR R4 REST face of the infusion management server (mounted at ``/fhir``)."""
