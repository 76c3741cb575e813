/**
 * What the playground starts with: the spec in the editor (README's PHD-CSWA, importing the DSL as
 * `phd-attention`) and the small text its training run learns from (the opening of the Brown
 * corpus file ca01, cleaned as runtime/data/batches.ts `cleanBrown` does: the corpus `deno task
 * train` uses).
 */

/** The editor's first spec. */
export const DEFAULT_SPEC = `import { and, defineAttention, or } from "phd-attention";

export default defineAttention({
  name: "phd_cswa",
  K: 3, // every token repeated K times: copy 0 is the original, copies 1.. are hidden
  params: { W: 16, C: 32 }, // runtime parameters: travel in uniforms, never recompile
  mask: ({ q, k, p }) =>
    or(
      and(k.original, k.pos.lt(q.pos)), // originals see earlier originals
      and(k.pos.eq(q.pos), k.copy.le(q.copy)), // the copies of a position see earlier copies
      and(
        q.hidden,
        k.hidden, // plus a window of W hidden tokens inside a chunk of C positions
        q.hiddenIndex.sub(p.W).lt(k.hiddenIndex),
        k.hiddenIndex.le(q.hiddenIndex),
        k.chunk(p.C).eq(q.chunk(p.C)),
      ),
    ),
});
`;

/** Brown corpus, ca01 (opening), 5836 characters. */
export const TRAINING_TEXT = [
  'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.',
  'The jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, "deserves the praise and thanks of the City of Atlanta" for the manner in which the election was conducted.',
  'The September-October term jury had been charged by Fulton Superior Court Judge Durwood Pye to investigate reports of possible "irregularities" in the hard-fought primary which was won by Mayor-nominate Ivan Allen Jr.',
  '"Only a relative handful of such reports was received", the jury said, "considering the widespread interest in the election, the number of voters and the size of this city".',
  'The jury said it did find that many of Georgia\'s registration and election laws "are outmoded or inadequate and often ambiguous".',
  'It recommended that Fulton legislators act "to have these laws studied and revised to the end of modernizing and improving them".',
  'The grand jury commented on a number of other topics, among them the Atlanta and Fulton County purchasing departments which it said "are well operated and follow generally accepted practices which inure to the best interest of both governments".',
  "Merger proposed",
  'However, the jury said it believes "these two offices should be combined to achieve greater efficiency and reduce the cost of administration".',
  'The City Purchasing Department, the jury said, "is lacking in experienced clerical personnel as a result of city personnel policies". It urged that the city "take steps to remedy" this problem.',
  "Implementation of Georgia's automobile title law was also recommended by the outgoing jury.",
  'It urged that the next Legislature "provide enabling funds and re-set the effective date so that an orderly implementation of the law may be effected".',
  "The grand jury took a swipe at the State Welfare Department's handling of federal funds granted for child welfare services in foster homes.",
  '"This is one of the major items in the Fulton County general assistance program", the jury said, but the State Welfare Department "has seen fit to distribute these funds through the welfare departments of all the counties in the state with the exception of Fulton County, which receives none of this money.',
  'The jurors said they realize "a proportionate distribution of these funds might disable this program in our less populous counties".',
  'Nevertheless, "we feel that in the future Fulton County should receive some portion of these available funds", the jurors said. "Failure to do this will continue to place a disproportionate burden" on Fulton taxpayers.',
  "The jury also commented on the Fulton ordinary's court which has been under fire for its practices in the appointment of appraisers, guardians and administrators and the awarding of fees and compensation.",
  "Wards protected",
  'The jury said it found the court "has incorporated into its operating procedures the recommendations" of two previous grand juries, the Atlanta Bar Association and an interim citizens committee.',
  '"These actions should serve to protect in fact and in effect the court\'s wards from undue costs and its appointed and elected servants from unmeritorious criticisms", the jury said.',
  'Regarding Atlanta\'s new multi-million-dollar airport, the jury recommended "that when the new management takes charge Jan. 1 the airport be operated in a manner that will eliminate political influences".',
  'The jury did not elaborate, but it added that "there should be periodic surveillance of the pricing practices of the concessionaires for the purpose of keeping the prices reasonable".',
  "Ask jail deputies",
  'On other matters, the jury recommended that: (1) Four additional deputies be employed at the Fulton County Jail and "a doctor, medical intern or extern be employed for night and weekend duty at the jail". (2) Fulton legislators "work with city officials to pass enabling legislation that will permit the establishment of a fair and equitable" pension plan for city employes.',
  "The jury praised the administration and operation of the Atlanta Police Department, the Fulton Tax Commissioner's Office, the Bellwood and Alpharetta prison farms, Grady Hospital and the Fulton Health Department.",
  "Mayor William B. Hartsfield filed suit for divorce from his wife, Pearl Williams Hartsfield, in Fulton Superior Court Friday. His petition charged mental cruelty.",
  "The couple was married Aug. 2, 1913. They have a son, William Berry Jr., and a daughter, Mrs. J. M. Cheshire of Griffin.",
  "Attorneys for the mayor said that an amicable property settlement has been agreed upon.",
  "The petition listed the mayor's occupation as \"attorney\" and his age as 71. It listed his wife's age as 74 and place of birth as Opelika, Ala.",
  "The petition said that the couple has not lived together as man and wife for more than a year.",
  "The Hartsfield home is at 637 E. Pelham Rd. Aj.",
  "Henry L. Bowden was listed on the petition as the mayor's attorney.",
  "Hartsfield has been mayor of Atlanta, with exception of one brief interlude, since 1937. His political career goes back to his election to city council in 1923.",
  "The mayor's present term of office expires Jan. 1. He will be succeeded by Ivan Allen Jr., who became a candidate in the Sept. 13 primary after Mayor Hartsfield announced that he would not run for reelection.",
  "Georgia Republicans are getting strong encouragement to enter a candidate in the 1962 governor's race, a top official said Wednesday.",
  "Robert Snodgrass, state GOP chairman, said a meeting held Tuesday night in Blue Ridge brought enthusiastic responses from the audience.",
  "State Party Chairman James W. Dorsey added that enthusiasm was picking up for a state rally to be held Sept. 8 in Savannah at which newly elected Texas Sen. John Tower will be the featured speaker.",
].join("\n");
