// The four assistant voices, as described in conf/speakers.yaml (keep the two in step).
// The server's /health says which of them the running engine offers.

export const VOICES = [
  { id: "arjun", name: "Arjun", telugu: "అర్జున్", gender: "male", persona: "young", age: "25-30", style: "energetic", pitchHz: 120 },
  { id: "ravi", name: "Ravi", telugu: "రవి", gender: "male", persona: "mature", age: "35-45", style: "authoritative", pitchHz: 100 },
  { id: "priya", name: "Priya", telugu: "ప్రియ", gender: "female", persona: "young", age: "22-28", style: "expressive", pitchHz: 220 },
  { id: "lakshmi", name: "Lakshmi", telugu: "లక్ష్మి", gender: "female", persona: "professional", age: "30-40", style: "clear", pitchHz: 190 },
];

/** A one-line description for screen readers and tooltips. */
export function describeVoice(voice) {
  return `${voice.name}: ${voice.persona} ${voice.gender} voice, age ${voice.age}, ${voice.style}, pitch about ${voice.pitchHz} hertz`;
}
