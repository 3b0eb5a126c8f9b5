"""The example's Django site (``example_project/mysite``) as it is, and a page for a test."""
