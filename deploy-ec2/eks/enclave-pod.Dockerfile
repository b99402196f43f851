# The `enclave` container of the EKS master pod (deploy-ec2/eks/base/deployment.yaml): nitro-cli
# and the EIF built by deploy-ec2/enclave/build-eif.sh. It runs the enclave; it is not the
# enclave (the EIF's PCRs are what the chain and the KMS key policy pin, not this image's digest).
#
#   docker buildx build --platform linux/amd64 --provenance=false \
#     --build-context eif=eif-out -f deploy-ec2/eks/enclave-pod.Dockerfile \
#     -t <account>.dkr.ecr.<region>.amazonaws.com/k3s-daas/enclave:<commit> --push .
#
# Push to an ECR repository with immutable tags and reference the pushed image by digest in the
# overlay (images: digest:). The enclave-run.sh program comes from a ConfigMap.

# Amazon Linux 2023, by digest. AL2023's package repositories are versioned with the release
# the image carries (deterministic upgrades), so `dnf install` resolves the same
# aws-nitro-enclaves-cli for the same base digest; the version is printed in the build log.
FROM public.ecr.aws/amazonlinux/amazonlinux:2023@sha256:12052e9b5d3fd85769abbdd863dd038e1890c9ace31d5fdbe1afa78eda97d061 AS enclave-pod
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3041
RUN dnf install -y aws-nitro-enclaves-cli jq \
    && dnf clean all \
    && rpm -q aws-nitro-enclaves-cli
# The EIF from build-eif.sh's output directory (`--build-context eif=DIR`).
FROM scratch AS eif
FROM enclave-pod
COPY --from=eif k3s-daas.eif pcrs.json /opt/k3s-daas/
