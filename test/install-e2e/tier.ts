/** The tier the install-e2e files report under when a whole local cluster cannot run here. */
export const INSTALL_TIER = 'install (whole local cluster, the image, kubectl and helm)';
