"""Hospital-system integration (layer 5): HL7 v2 IHE PCD over MLLP and a FHIR R4 face.

Orders flow from the EHR to the pump (PCD-03 RGV^O15 or a FHIR MedicationRequest): they are
validated against the patient association and the drug library, then only *pre-populated*
on the pump for a clinician to confirm at the bedside. What the pump did flows back to the
chart (PCD-01 ORU^R01 observations, PCD-04 ORU^R40 alerts, FHIR MedicationAdministration).
"""
