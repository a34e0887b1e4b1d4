"""HL7 v2.6 messages of the IHE Patient Care Device profiles (PCD-01, PCD-03, PCD-04)."""
