"""The worker: claims tasks from the database queue and runs their fine-tuning method."""
