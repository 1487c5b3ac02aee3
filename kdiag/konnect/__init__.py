"""Kong Konnect: the API client (`client`), the `kdiag konnect …` provisioning commands (`cli`)."""
