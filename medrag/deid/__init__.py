"""De-identification (a shared leaf): the DICOM PS3.15 Basic Application Level Confidentiality Profile, the
free-text scrubber, and the per-deployment secret that keys pseudonyms, UIDs and date shifts. Ingestion and
every query use it before anything is stored, embedded, logged or shown."""
