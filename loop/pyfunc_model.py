"""MLflow "models from code" entry: the file MLflow stores and runs to build the pyfunc."""
import mlflow

from loop.pyfunc import RecognizerModel

mlflow.models.set_model(RecognizerModel())
