"""ecowatch: online pollution monitoring and enforcement alerts."""
