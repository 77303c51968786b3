"""The serving app: a prediction API and an operator page in front of the stage's SageMaker endpoint."""
