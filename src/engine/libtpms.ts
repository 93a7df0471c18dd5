/**
 * koffi 3 binding of Debian's `libtpms.so.0` (0.9.2; 0.10 symbols optional) and of
 * libc malloc/free. Thin on purpose: names and signatures follow
 * /usr/include/libtpms/tpm_library.h and tpm_tis.h; the Engine adds the policy.
 *
 * Nothing is loaded at import time: `import koffi` alone costs 10–27 ms, so koffi
 * is required on the first `loadLibtpms()` call, and each libtpms function is declared
 * on its first use.
 *
 * Conventions of this binding (koffi 3):
 * - pointers are BigInt; `u8 **` / `u32 *` out-parameters that the Engine reads
 *   from its own malloc()ed slots are declared `void *`;
 * - small integer out-parameters use `_Out_ T *` with a one-element JS array;
 * - a `const char *` callback argument arrives as a JS string.
 */
import type koffiModule from 'koffi';
import type { KoffiFunc, TypeObject } from 'koffi';
import { requireKoffi } from './koffi.js';
import { declareOnce, nativeKoffi, nativeLibc } from './native.js';
import { prefetchOpensslRandom } from './prefetch.js';

export type Koffi = typeof koffiModule;
/** Native address as koffi 3 represents it; `null` is NULL. */
export type Ptr = bigint;
type PtrIn = bigint | Uint8Array | null;

/** TPMLIB_TPMVersion (tpm_library.h). */
export const TPMLIB_TPM_VERSION_1_2 = 0;
export const TPMLIB_TPM_VERSION_2 = 1;

/** enum TPMLIB_StateType (tpm_library.h): bit values, SAVE_STATE is 4, not 3. */
export const TPMLIB_STATE_PERMANENT = 1;
export const TPMLIB_STATE_VOLATILE = 2;
export const TPMLIB_STATE_SAVE_STATE = 4;

/** enum TPMLIB_InfoFlags: 1, 2, 4 exist in 0.9; 8..128 are 0.10+ only. */
export const TPMLIB_INFO_TPMSPECIFICATION = 1;
export const TPMLIB_INFO_TPMATTRIBUTES = 2;
export const TPMLIB_INFO_TPMFEATURES = 4;

/** enum TPMLIB_TPMProperty (first three are the ones 0.9.2 TPM 2 answers). */
export const TPMPROP_TPM_RSA_KEY_LENGTH_MAX = 1;
export const TPMPROP_TPM_BUFFER_MAX = 2;
export const TPMPROP_TPM_KEY_HANDLES = 3;

/** enum TPMLIB_BlobType. */
export const TPMLIB_BLOB_TYPE_INITSTATE = 0;

/** JS side of `struct libtpms_callbacks` (LP64: 64 bytes, function pointers at 8..56). */
export interface CallbackImpls {
  nvramInit(): number;
  /** `(u8 **data, u32 *len, u32 tpm_number, const char *name)`; *data must be malloc()ed. */
  nvramLoadData(data: Ptr, length: Ptr, tpmNumber: number, name: string): number;
  /** `(const u8 *data, u32 len, u32 tpm_number, const char *name)`; data is borrowed. */
  nvramStoreData(data: Ptr | null, length: number, tpmNumber: number, name: string): number;
  nvramDeleteName(tpmNumber: number, name: string, mustExist: number): number;
  ioInit(): number;
  /** `(TPM_MODIFIER_INDICATOR *locality, u32 tpm_number)`; TPM_MODIFIER_INDICATOR is u32. */
  ioGetLocality(locality: Ptr, tpmNumber: number): number;
}

export interface Libtpms {
  readonly koffi: Koffi;
  readonly GetVersion: KoffiFunc<() => number>;
  readonly ChooseTPMVersion: KoffiFunc<(ver: number) => number>;
  readonly MainInit: KoffiFunc<() => number>;
  readonly Terminate: KoffiFunc<() => void>;
  /** `(u8 **resp, u32 *resp_size, u32 *resp_bufsize, u8 *cmd, u32 cmd_size)`. */
  readonly Process: KoffiFunc<
    (resp: Ptr, respSize: Ptr, respBufSize: Ptr, cmd: PtrIn, cmdSize: number) => number
  >;
  /** `(u8 **buf, u32 *len)`; the caller frees *buf. */
  readonly VolatileAll_Store: KoffiFunc<(buf: Ptr, len: Ptr) => number>;
  readonly CancelCommand: KoffiFunc<() => number>;
  readonly GetTPMProperty: KoffiFunc<(prop: number, result: number[]) => number>;
  /** Returns a malloc()ed JSON C string or NULL. */
  readonly GetInfo: KoffiFunc<(flags: number) => Ptr | null>;
  readonly SetBufferSize: KoffiFunc<(wanted: number, min: number[], max: number[]) => number>;
  readonly GetState: KoffiFunc<(st: number, buf: Ptr, len: Ptr) => number>;
  readonly SetState: KoffiFunc<(st: number, buf: PtrIn, len: number) => number>;
  readonly ValidateState: KoffiFunc<(st: number, flags: number) => number>;
  /** `(const char *data, enum type, u8 **result, size_t *result_len)`. */
  readonly DecodeBlob: KoffiFunc<(data: string, type: number, result: Ptr, len: Ptr) => number>;
  readonly SetDebugFD: KoffiFunc<(fd: number) => void>;
  readonly SetDebugLevel: KoffiFunc<(level: number) => void>;
  /** libtpms strdup()s the prefix (checked in the 0.9.2 disassembly). */
  readonly SetDebugPrefix: KoffiFunc<(prefix: string | null) => number>;
  readonly Hash_Start: KoffiFunc<() => number>;
  readonly Hash_Data: KoffiFunc<(data: PtrIn, len: number) => number>;
  readonly Hash_End: KoffiFunc<() => number>;
  readonly TpmEstablished_Get: KoffiFunc<(established: number[]) => number>;
  readonly TpmEstablished_Reset: KoffiFunc<() => number>;
  /** Same as libc free() in 0.9.2. */
  readonly TPM_Free: KoffiFunc<(p: Ptr | null) => void>;
  /** libtpms >= 0.10 only. */
  readonly SetProfile: KoffiFunc<(profile: string | null) => number> | undefined;
  /** libtpms >= 0.10 only: whether the last MainInit manufactured a new TPM. */
  readonly WasManufactured: KoffiFunc<() => boolean> | undefined;
  readonly malloc: KoffiFunc<(size: number) => Ptr | null>;
  readonly free: KoffiFunc<(p: Ptr | null) => void>;
  /** What this copy was loaded from: `libtpms.so.0` or `/proc/self/fd/N` (copies.ts). */
  readonly path: string;
  /**
   * Points this copy's callbacks at `impl` (undefined: every callback fails). The first
   * call registers six trampolines with koffi and libtpms (physical presence stays
   * NULL, as in swtpm); later calls only retarget them, so a copy that serves one TPM
   * after another keeps its six of koffi's 8,192 callback slots.
   */
  setCallbacks(impl: CallbackImpls | undefined): number;
  /**
   * Whether libtpms calls the locality callback (after setCallbacks, default true).
   * Without it a TPM 2 command runs at locality 0, and one call from C into JavaScript
   * per command is saved. TPM 1.2 must keep it: its fallback prints to stdout. Change
   * it only while no command of this copy runs on a worker thread.
   */
  setLocalityCallback(on: boolean): void;
}

/** TPM_FAIL (tpm_error.h): every callback's answer while no engine holds the copy. */
const DETACHED_RC = 0x9;
const DETACHED: CallbackImpls = {
  nvramInit: () => DETACHED_RC,
  nvramLoadData: () => DETACHED_RC,
  nvramStoreData: () => DETACHED_RC,
  nvramDeleteName: () => DETACHED_RC,
  ioInit: () => DETACHED_RC,
  ioGetLocality: () => DETACHED_RC,
};

/** koffi, required (not imported) so that it loads on first use only (koffi.ts). */
export { requireKoffi };

/**
 * The normally loaded libtpms (RTLD_DEEPBIND, so its OpenSSL symbols bind to the
 * system libcrypto instead of the copy statically linked into node), bound on first
 * use. Every later call returns the same binding: dlopen() of one file yields one copy,
 * so it is a process-wide fact (native.ts). It does not say which TPM uses the copy
 * (libraries.ts does); a second TPM in the process needs its own copy (copies.ts).
 *
 * @example
 * const lib = loadLibtpms();
 * lib.GetVersion(); // 0x000902 on Debian 12
 */
export function loadLibtpms(): Libtpms {
  return declareOnce(bindFirstCopy);
}

function bindFirstCopy(): Libtpms {
  return bindLibtpms('libtpms.so.0');
}

interface LibtpmsTypes {
  readonly protos: Record<'init' | 'load' | 'store' | 'del' | 'ioInit' | 'loc' | 'pp', TypeObject>;
  readonly Callbacks: TypeObject;
}

/** koffi refuses a second named type of the same name: declared once for every copy. */
function libtpmsTypes(koffi: Koffi): LibtpmsTypes {
  const u32 = 'uint32_t';
  const protos = {
    init: koffi.proto(`${u32} tpm_nvram_init_cb(void)`),
    load: koffi.proto(`${u32} tpm_nvram_loaddata_cb(void *, void *, ${u32}, const char *)`),
    store: koffi.proto(`${u32} tpm_nvram_storedata_cb(void *, ${u32}, ${u32}, const char *)`),
    del: koffi.proto(`${u32} tpm_nvram_deletename_cb(${u32}, const char *, uint8_t)`),
    ioInit: koffi.proto(`${u32} tpm_io_init_cb(void)`),
    loc: koffi.proto(`${u32} tpm_io_getlocality_cb(void *, ${u32})`),
    pp: koffi.proto(`${u32} tpm_io_getphysicalpresence_cb(void *, ${u32})`),
  };
  const Callbacks = koffi.struct('libtpms_callbacks', {
    sizeOfStruct: 'int',
    tpm_nvram_init: koffi.pointer(protos.init),
    tpm_nvram_loaddata: koffi.pointer(protos.load),
    tpm_nvram_storedata: koffi.pointer(protos.store),
    tpm_nvram_deletename: koffi.pointer(protos.del),
    tpm_io_init: koffi.pointer(protos.ioInit),
    tpm_io_getlocality: koffi.pointer(protos.loc),
    tpm_io_getphysicalpresence: koffi.pointer(protos.pp),
  });
  return { protos, Callbacks };
}

/** libc's malloc and free, which libtpms' memory comes from and goes back to (§2.1.3). */
function libcMemory(): Pick<Libtpms, 'malloc' | 'free'> {
  const libc = nativeLibc();
  return {
    malloc: libc.func('void *malloc(size_t size)') as unknown as Libtpms['malloc'],
    free: libc.func('void free(void *p)') as unknown as Libtpms['free'],
  };
}

/**
 * Binds the library at `path` (a name for the dynamic linker, or a file path such as
 * `/proc/self/fd/N`). Each distinct file is one more TPM: its own globals.
 */
export function bindLibtpms(path: string): Libtpms {
  const koffi = nativeKoffi();
  const lib = koffi.load(path, { deep: true });
  prefetchOpensslRandom(lib);
  const f = <T extends (...args: never[]) => unknown>(decl: string) =>
    lib.func(decl) as unknown as KoffiFunc<T>;
  const optional = <T extends (...args: never[]) => unknown>(decl: string) => {
    try {
      return f<T>(decl);
    } catch {
      // koffi throws "Cannot find function" for symbols absent from 0.9.x.
      return undefined;
    }
  };
  let target: CallbackImpls | undefined;
  let registered = false;
  /** The struct as last registered, and a re-registration with another locality pointer. */
  let struct: Record<string, unknown> | undefined;
  let register: ((cbs: object) => number) | undefined;
  let localityOn = true;
  const binding = {
    koffi,
    ...declareOnce(libcMemory),
    path,
    setCallbacks(impl: CallbackImpls | undefined): number {
      target = impl;
      if (registered) return 0;
      registered = true;
      // One set per copy: libtpms keeps one global struct, and each registration takes
      // six of koffi's 8,192 callback slots. Without a target libtpms is told TPM_FAIL.
      const on = () => target ?? DETACHED;
      const { protos, Callbacks } = declareOnce(libtpmsTypes);
      const reg = (fn: (...a: never[]) => number, proto: TypeObject) =>
        koffi.register(fn, koffi.pointer(proto));
      register = lib.func('TPMLIB_RegisterCallbacks', 'uint32_t', [
        koffi.pointer(Callbacks),
      ]) as unknown as (cbs: object) => number;
      struct = {
        sizeOfStruct: koffi.sizeof(Callbacks),
        tpm_nvram_init: reg(() => on().nvramInit(), protos.init),
        tpm_nvram_loaddata: reg(
          (d: Ptr, l: Ptr, n: number, s: string) => on().nvramLoadData(d, l, n, s),
          protos.load,
        ),
        tpm_nvram_storedata: reg(
          (d: Ptr | null, l: number, n: number, s: string) => on().nvramStoreData(d, l, n, s),
          protos.store,
        ),
        tpm_nvram_deletename: reg(
          (n: number, s: string, m: number) => on().nvramDeleteName(n, s, m),
          protos.del,
        ),
        tpm_io_init: reg(() => on().ioInit(), protos.ioInit),
        tpm_io_getlocality: reg((p: Ptr, n: number) => on().ioGetLocality(p, n), protos.loc),
        tpm_io_getphysicalpresence: null,
      };
      return register(struct);
    },
    setLocalityCallback(on: boolean): void {
      if (on === localityOn || struct === undefined || register === undefined) return;
      // libtpms copies the struct (TPMLIB_RegisterCallbacks); the trampolines stay.
      const rc = register({
        ...struct,
        tpm_io_getlocality: on ? struct.tpm_io_getlocality : null,
      });
      if (rc !== 0) throw new Error(`TPMLIB_RegisterCallbacks failed: 0x${rc.toString(16)}`);
      localityOn = on;
    },
  };
  // The functions themselves are declared on first use: a server start calls about a
  // third of them, and each declaration (prototype parsed, symbol looked up) cost a
  // start 25-50 µs.
  for (const [name, [decl, isOptional]] of Object.entries(FUNCTIONS)) {
    Object.defineProperty(binding, name, {
      configurable: true,
      enumerable: true,
      get() {
        const fn = isOptional ? optional(decl) : f(decl);
        Object.defineProperty(binding, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
  return binding as typeof binding & Pick<Libtpms, keyof typeof FUNCTIONS>;
}

const u32 = 'uint32_t';

/** The libtpms functions a binding declares on first use: the C declaration, and whether libtpms 0.9 lacks it. */
const FUNCTIONS = {
  GetVersion: [`${u32} TPMLIB_GetVersion(void)`, false],
  ChooseTPMVersion: [`${u32} TPMLIB_ChooseTPMVersion(int ver)`, false],
  MainInit: [`${u32} TPMLIB_MainInit(void)`, false],
  Terminate: ['void TPMLIB_Terminate(void)', false],
  Process: [
    `${u32} TPMLIB_Process(void *resp, void *rlen, void *rsize, void *cmd, ${u32} clen)`,
    false,
  ],
  VolatileAll_Store: [`${u32} TPMLIB_VolatileAll_Store(void *buf, void *len)`, false],
  CancelCommand: [`${u32} TPMLIB_CancelCommand(void)`, false],
  GetTPMProperty: [`${u32} TPMLIB_GetTPMProperty(int prop, _Out_ int *result)`, false],
  GetInfo: ['void *TPMLIB_GetInfo(int flags)', false],
  SetBufferSize: [
    `${u32} TPMLIB_SetBufferSize(${u32} wanted, _Out_ ${u32} *min, _Out_ ${u32} *max)`,
    false,
  ],
  GetState: [`${u32} TPMLIB_GetState(int st, void *buf, void *len)`, false],
  SetState: [`${u32} TPMLIB_SetState(int st, void *buf, ${u32} len)`, false],
  ValidateState: [`${u32} TPMLIB_ValidateState(int st, unsigned int flags)`, false],
  DecodeBlob: [`${u32} TPMLIB_DecodeBlob(const char *data, int type, void *res, void *len)`, false],
  SetDebugFD: ['void TPMLIB_SetDebugFD(int fd)', false],
  SetDebugLevel: ['void TPMLIB_SetDebugLevel(unsigned int level)', false],
  SetDebugPrefix: [`${u32} TPMLIB_SetDebugPrefix(const char *prefix)`, false],
  Hash_Start: [`${u32} TPM_IO_Hash_Start(void)`, false],
  Hash_Data: [`${u32} TPM_IO_Hash_Data(void *data, ${u32} len)`, false],
  Hash_End: [`${u32} TPM_IO_Hash_End(void)`, false],
  TpmEstablished_Get: [`${u32} TPM_IO_TpmEstablished_Get(_Out_ uint8_t *established)`, false],
  TpmEstablished_Reset: [`${u32} TPM_IO_TpmEstablished_Reset(void)`, false],
  TPM_Free: ['void TPM_Free(void *p)', false],
  SetProfile: [`${u32} TPMLIB_SetProfile(const char *profile)`, true],
  WasManufactured: ['bool TPMLIB_WasManufactured(void)', true],
} as const satisfies Record<string, readonly [string, boolean]>;
