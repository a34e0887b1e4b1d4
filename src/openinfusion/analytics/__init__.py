"""Fleet analytics (layer 5): DERS compliance, overrides, alarm burden, library verification
on virtual populations, and predictive maintenance of the pump fleet."""
