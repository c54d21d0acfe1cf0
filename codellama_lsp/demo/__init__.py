"""The demo model (training), its corpus and the demo client."""
