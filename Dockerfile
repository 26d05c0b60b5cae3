# The one image for both processes: `ovnkube-route webhook` (Deployment) and
# `ovnkube-route agent` (DaemonSet), as deploy/ runs them.
#   docker build -t ovnkube-route:0.1.0 .
# (This project's own machines run no Docker engine: the image build is not exercised by
# CI; what it runs — `npm ci` building dist/ and the setns addon, then the CLI — is.)
FROM node:20-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
# npm ci runs `prepare`: schema module, TypeScript, and the setns addon against Node's headers.
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/injector/native/build/Release/setns.node ./injector/native/build/Release/setns.node
COPY --from=build /app/crds ./crds
ENTRYPOINT ["node", "/app/dist/bin/ovnkube-route.js"]
