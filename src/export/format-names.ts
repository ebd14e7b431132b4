/** The fine-tune config formats a policy exports to (apart from formats.ts, which loads yaml). */
export const EXPORT_FORMATS = ['limpq-yaml', 'nni', 'hawq'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
