/**
 * admission.k8s.io/v1 AdmissionReview: the subset of the wire types we read and write, and
 * the envelope check that decides between "answer with an AdmissionReview" and "answer
 * with HTTP 400". An AdmissionReview answer needs the request's uid, so everything that
 * prevents echoing a uid (not JSON, not an AdmissionReview, another version, no uid) is a
 * 400 with a message; everything else is answered inside an AdmissionReview.
 */

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}
export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
}

export interface AdmissionRequest {
  uid: string;
  kind?: GroupVersionKind;
  resource?: GroupVersionResource;
  subResource?: string;
  /** Empty for pods created with generateName: the name is chosen after admission. */
  name?: string;
  namespace?: string;
  operation?: Operation | string;
  userInfo?: UserInfo;
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
}

export interface AdmissionStatus {
  code?: number;
  reason?: string;
  message?: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch document. */
  patch?: string;
  /** Not consulted by the API server when allowed is true; carries our diagnostics. */
  status?: AdmissionStatus;
  /** Shown to the client that made the request (kubectl prints them). */
  warnings?: string[];
}

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

/** An AdmissionReview whose envelope is fit to answer: v1, with a request and a uid. */
export interface ValidReview extends AdmissionReview {
  request: AdmissionRequest;
}

/** Codes of the envelope problems answered with HTTP 400. */
export type ReviewErrorCode =
  | 'OVNKR_REVIEW_NOT_OBJECT'
  | 'OVNKR_REVIEW_WRONG_KIND'
  | 'OVNKR_REVIEW_V1BETA1'
  | 'OVNKR_REVIEW_WRONG_VERSION'
  | 'OVNKR_REVIEW_NO_REQUEST'
  | 'OVNKR_REVIEW_NO_UID';

export type ParsedReview = { ok: true; review: ValidReview } | { ok: false; code: ReviewErrorCode; message: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Longest uid we echo; real ones are 36-character UUIDs. */
const MAX_UID = 128;

const show = (v: unknown): string => JSON.stringify(v)?.slice(0, 80) ?? String(v);

/** Check the envelope of a parsed request body. Never throws. */
export function parseReview(body: unknown): ParsedReview {
  if (!isObject(body)) {
    return {
      ok: false,
      code: 'OVNKR_REVIEW_NOT_OBJECT',
      message: `request body: expected an AdmissionReview object, got ${Array.isArray(body) ? 'an array' : body === null ? 'null' : typeof body}`,
    };
  }
  if (body.kind !== 'AdmissionReview') {
    return {
      ok: false,
      code: 'OVNKR_REVIEW_WRONG_KIND',
      message: `request body .kind: expected "AdmissionReview", got ${show(body.kind)}`,
    };
  }
  if (body.apiVersion === 'admission.k8s.io/v1beta1') {
    return {
      ok: false,
      code: 'OVNKR_REVIEW_V1BETA1',
      message:
        'request body .apiVersion: admission.k8s.io/v1beta1 is not supported; set admissionReviewVersions: ["v1"] in the MutatingWebhookConfiguration',
    };
  }
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    return {
      ok: false,
      code: 'OVNKR_REVIEW_WRONG_VERSION',
      message: `request body .apiVersion: expected "${ADMISSION_API_VERSION}", got ${show(body.apiVersion)}`,
    };
  }
  const req = body.request;
  if (!isObject(req)) {
    return { ok: false, code: 'OVNKR_REVIEW_NO_REQUEST', message: 'request body .request: expected an AdmissionRequest object' };
  }
  if (typeof req.uid !== 'string' || req.uid === '' || req.uid.length > MAX_UID) {
    return {
      ok: false,
      code: 'OVNKR_REVIEW_NO_UID',
      message: `request body .request.uid: expected a non-empty string of at most ${MAX_UID} characters, got ${show(req.uid)}`,
    };
  }
  return { ok: true, review: body as unknown as ValidReview };
}
