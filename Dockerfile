# The one image for both processes: `ovnkube-route webhook` (Deployment) and
# `ovnkube-route agent` (DaemonSet), as deploy/ runs them.
#   docker build -t ovnkube-route:0.1.0 .
# (This project's own machines run no Docker engine: this file is for registries. The local
# cluster's image is assembled in code from the same parts, test/cluster/addon-image.ts, and
# the install-e2e tier runs that one; what this file runs — `npm ci` building dist/ and the
# setns addon — is what CI runs.)
# Node 24 LTS, as package.json's engines and the `node` devDependency the tests run on.
FROM node:24-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
# npm ci runs `prepare`: schema module, TypeScript, and the setns addon against Node's headers.
# (prune drops the `node` devDependency too: the runtime's Node is the base image's.)
RUN npm ci && npm prune --omit=dev && rm -rf node_modules/@types

FROM node:24-bookworm-slim
# The non-root user of the webhook Deployment (runAsUser 65532); the agent's DaemonSet asks for root.
USER 65532:65532
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/injector/native/build/Release/setns.node ./injector/native/build/Release/setns.node
COPY --from=build /app/crds ./crds
ENTRYPOINT ["node", "/app/dist/bin/ovnkube-route.js"]
