/** EK and platform certificates and the swtpm_localca-compatible local CA. */
export { localCaCertMaker, type LocalCaMakerOptions } from './maker.js';
export { issueLocalCaCert, type IssuedCert, type LocalCaRequest } from './issue.js';
export { LocalCaError } from './localca.js';
export { buildCertificate, withTpm12Header, type CertInput, type CaSigner } from './profile.js';
export { ekPublicKey } from './pubkey.js';
