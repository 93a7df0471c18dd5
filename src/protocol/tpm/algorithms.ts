/** TPM_ALG_ID and TPM_ECC_CURVE values (TPM 2.0 Part 2, 6.3 and 6.4) the builders use. */
export const TPM_ALG_RSA = 0x0001;
export const TPM_ALG_SHA1 = 0x0004;
export const TPM_ALG_SHA256 = 0x000b;
export const TPM_ALG_ECC = 0x0023;
export const TPM_ALG_AES = 0x0006;
export const TPM_ALG_CFB = 0x0043;
export const TPM_ALG_NULL = 0x0010;
export const TPM_ECC_NIST_P256 = 0x0003;
