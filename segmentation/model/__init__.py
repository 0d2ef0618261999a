"""The model layer: MONAI networks by name, test metrics and the LightningModule (uses `schedules`)."""
