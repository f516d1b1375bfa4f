FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY health ./health
COPY fhir ./fhir
RUN pip install --no-cache-dir .
ENV HEALTH_CONFORMANCE_DIR=/app/fhir
EXPOSE 8000
CMD ["health", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
